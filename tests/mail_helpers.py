"""A real SMTP server on loopback (aiosmtpd) for mail tests, and a few helpers around it."""

from __future__ import annotations

import socket
from email import message_from_bytes, policy
from email.message import EmailMessage

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from core.notifications.mail import SmtpTransport


def free_port() -> int:
    """A loopback port nothing listens on (the OS just handed it out and it was released again)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class SmtpSink:
    """Collects every message it accepts; ``refuse`` (e.g. "550 ...") makes it reject DATA instead.

    With ``credentials`` it requires AUTH (allowed without TLS, on loopback only) and records logins.
    """

    def __init__(self, port: int | None = None, *, credentials: tuple[str, str] | None = None):
        self.port = port or free_port()
        self.credentials = credentials
        self.refuse: str | None = None
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.logins: list[str] = []
        self._controller: Controller | None = None

    # aiosmtpd handler hook
    async def handle_DATA(self, server, session, envelope):
        if self.refuse:
            return self.refuse
        self.messages.append(message_from_bytes(envelope.content, policy=policy.default))
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 Message accepted for delivery"

    def _authenticate(self, server, session, envelope, mechanism, auth_data):
        if isinstance(auth_data, LoginPassword):
            login, password = auth_data.login.decode(), auth_data.password.decode()
            if (login, password) == self.credentials:
                self.logins.append(login)
                return AuthResult(success=True)
        return AuthResult(success=False, handled=False)

    def start(self) -> SmtpSink:
        options = {}
        if self.credentials:
            options = {"authenticator": self._authenticate, "auth_required": True, "auth_require_tls": False}
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port, ready_timeout=5, **options)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def transport(self, **options) -> SmtpTransport:
        return SmtpTransport("127.0.0.1", self.port, starttls=False, timeout=5, **options)


def text_of(message: EmailMessage, subtype: str = "plain") -> str:
    """A body part's text with every run of whitespace as one space: wrapped lines and the no-break
    space of German amounts (``1.234,56\u00a0€``) do not get in the way of looking for a phrase."""
    return " ".join(message.get_body((subtype,)).get_content().split())


def subject_of(message: EmailMessage) -> str:
    return str(message["Subject"]).replace("\u00a0", " ")
