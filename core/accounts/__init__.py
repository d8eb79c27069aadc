"""Who is who: companies, users and roles, passwords and logins, and the audit trail of staff
actions."""
