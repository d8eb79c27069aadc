// The portal's only script besides htmx, loaded from a file: the Content-Security-Policy allows no
// inline script (app/security.py).

// The language switch returns to the page as the address bar shows it now: htmx may have pushed a
// newer address (a filter, a tab) than the one the page was rendered with.
document.addEventListener("submit", function (event) {
  const form = event.target;
  if (form instanceof HTMLFormElement && form.classList.contains("language-switch")) {
    form.elements.next.value = location.pathname + location.search;
  }
});

// The set-password link carries its token after '#', which a browser never sends to a server: no
// access log and no Referer ever sees it. Post it with the page's form, and take it out of the
// address bar and the history.
(function () {
  const form = document.getElementById("set-password-link");
  const token = location.hash.slice(1);
  if (!form || !token) {
    return;
  }
  history.replaceState(null, "", location.pathname + location.search);
  form.elements.link.value = token;
  form.submit();
})();
