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
