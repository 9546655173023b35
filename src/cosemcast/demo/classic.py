"""Classic per-head-end encryption, run beside the shared payload to measure what it saves.

Theory of operation. In the classic scheme a meter that reports to *k* head-ends ciphers each
reading *k* times, once under the key it shares with each head-end, and sends *k* messages.
:class:`ClassicMeter` does exactly that for every DATA-NOTIFICATION the shared-payload meter
sealed: general-glo-ciphering (SC 0x30, suite 0, the head-end's own EK/AK, the meter's
system title, a fresh invocation counter per key) sent over UDP to that head-end's
:class:`ClassicReceiver`, which verifies the tag and deciphers it with its own copy of the key,
the way a classic head-end would. Both count messages, bytes and AES-GCM operations, so the
comparison printed by ``cosemcast demo`` is measured, not computed from a formula.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from cosemcast.apdu.base import decode_apdu
from cosemcast.apdu.general import GeneralGloCiphering
from cosemcast.errors import DlmsError
from cosemcast.link.wrapper import WrapperFrame
from cosemcast.security.gcm import SymmetricKeys
from cosemcast.security.protection import cipher_apdu, decipher_apdu
from cosemcast.transport.base import Address
from cosemcast.transport.udp import UdpPushSender, UdpWrapperServer

__all__ = ["ClassicKeys", "ClassicMeter", "ClassicReceiver"]

_SECURITY_CONTROL = 0x30
_WRAPPER_HEADER = 8


@dataclass(frozen=True, slots=True)
class ClassicKeys:
    """The EK/AK one meter shares with one head-end in the classic scheme."""

    ek: bytes = field(repr=False)
    ak: bytes = field(repr=False)

    def symmetric(self) -> SymmetricKeys:
        return SymmetricKeys(self.ek, self.ak)


class ClassicReceiver:
    """A classic head-end's UDP port: verifies and deciphers every message, counts them."""

    def __init__(
        self, keys: Mapping[bytes, ClassicKeys], host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self._keys = {meter: k.symmetric() for meter, k in keys.items()}
        self._lock = threading.Lock()
        self.received = 0
        self.received_bytes = 0
        self.verified = 0
        self.rejected = 0
        self.aes_operations = 0
        self.on_plaintext: Callable[[bytes, bytes], None] | None = None
        self._server = UdpWrapperServer(host, port, self._on_datagram)

    def __repr__(self) -> str:
        return f"ClassicReceiver(meters={len(self._keys)}, received={self.received})"

    @property
    def address(self) -> Address:
        return self._server.local

    def start(self) -> None:
        self._server.start()

    def close(self) -> None:
        self._server.close()

    def _on_datagram(self, source: Address, frame: WrapperFrame) -> bytes | None:
        size = _WRAPPER_HEADER + len(frame.apdu)
        try:
            apdu = decode_apdu(frame.apdu)
            if not isinstance(apdu, GeneralGloCiphering):
                raise TypeError
            keys = self._keys[apdu.system_title]
            plain = decipher_apdu(apdu, keys=keys).plain
        except (DlmsError, KeyError, TypeError):
            with self._lock:
                self.received += 1
                self.received_bytes += size
                self.rejected += 1
            return None
        with self._lock:
            self.received += 1
            self.received_bytes += size
            self.verified += 1
            self.aes_operations += 1
        if self.on_plaintext is not None:
            self.on_plaintext(apdu.system_title, plain)
        return None


class ClassicMeter:
    """The classic meter: seals one notification once per head-end and sends each copy."""

    def __init__(
        self,
        system_title: bytes,
        head_ends: Mapping[bytes, tuple[ClassicKeys, Address]],
    ) -> None:
        self.system_title = bytes(system_title)
        self._routes = [
            (
                keys.symmetric(),
                UdpPushSender(address[0], address[1], source_wport=1, destination_wport=1),
            )
            for _, (keys, address) in sorted(head_ends.items())
        ]
        self._counter = 0
        self._lock = threading.Lock()
        self.sent = 0
        self.sent_bytes = 0
        self.aes_operations = 0

    def __repr__(self) -> str:
        return f"ClassicMeter({self.system_title.hex().upper()}, head_ends={len(self._routes)})"

    def send(self, notification: bytes) -> None:
        """Cipher ``notification`` (an encoded DATA-NOTIFICATION) for every head-end; send."""
        with self._lock:
            for keys, sender in self._routes:
                self._counter += 1
                apdu = cipher_apdu(
                    notification,
                    kind="general-glo",
                    security_control=_SECURITY_CONTROL,
                    keys=keys,
                    system_title=self.system_title,
                    invocation_counter=self._counter,
                ).encode()
                sender.send_apdu(apdu)
                self.sent += 1
                self.sent_bytes += _WRAPPER_HEADER + len(apdu)
                self.aes_operations += 1

    def close(self) -> None:
        for _, sender in self._routes:
            sender.close()
