"""aiosmtpd handler for scripts/smtp-test-server: writes every accepted message to a directory
(raw `.eml` plus a decoded `.json` summary: envelope, From, To, Subject, text and HTML parts).

Each message becomes `<maildir>/<n>-<uuid>.eml` (the raw message as received, with `X-Envelope-To`
and `X-Envelope-From` headers prepended), written to a temporary name first, then renamed.
Start with: python -m aiosmtpd -n -l 127.0.0.1:PORT -c smtp_sink.Sink <maildir>
"""

import email
import email.policy
import itertools
import json
import os
import uuid

_counter = itertools.count(1)


class Sink:
    def __init__(self, maildir):
        self.maildir = maildir
        os.makedirs(maildir, exist_ok=True)

    @classmethod
    def from_cli(cls, parser, *args):
        if len(args) != 1:
            parser.error("smtp_sink.Sink takes one argument: the maildir")
        return cls(args[0])

    async def handle_DATA(self, server, session, envelope):
        name = f"{next(_counter):06d}-{uuid.uuid4().hex}.eml"
        head = "X-Envelope-From: {}\r\nX-Envelope-To: {}\r\n".format(
            envelope.mail_from, ", ".join(envelope.rcpt_tos)
        ).encode()
        data = envelope.original_content or envelope.content
        if isinstance(data, str):
            data = data.encode()
        tmp = os.path.join(self.maildir, "." + name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(head + data)
        # A decoded summary next to it, so tests need no MIME parser.
        msg = email.message_from_bytes(data, policy=email.policy.default)
        plain = msg.get_body(("plain",))
        html = msg.get_body(("html",))
        summary = {
            "mailFrom": envelope.mail_from,
            "rcptTos": list(envelope.rcpt_tos),
            "from": str(msg.get("From", "")),
            "to": str(msg.get("To", "")),
            "subject": str(msg.get("Subject", "")),
            "contentType": msg.get_content_type(),
            "text": plain.get_content() if plain is not None else None,
            "html": html.get_content() if html is not None else None,
        }
        # The temporary names start with a dot and do not end in `.json`, so a reader never
        # sees a half-written summary.
        with open(tmp + ".summary", "w", encoding="utf-8") as f:
            json.dump(summary, f)
        os.replace(tmp + ".summary", os.path.join(self.maildir, name[:-4] + ".json"))
        os.replace(tmp, os.path.join(self.maildir, name))
        return "250 Message accepted for delivery"
