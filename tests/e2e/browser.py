"""Steps a person takes in the browser, shared by the journeys."""


def log_in_as(page, live_url: str, email: str, password: str = "company-password") -> None:
    """Log in through the German login form, as a customer would."""
    page.goto(f"{live_url}/login")
    page.get_by_label("E-Mail-Adresse").fill(email)
    page.get_by_label("Passwort").fill(password)
    page.get_by_role("button", name="Anmelden").click()
