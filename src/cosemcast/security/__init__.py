"""Security: security control, AES-GCM (12-byte tag), GMAC, key wrap, ECDH/KDF, ECDSA, counters."""
