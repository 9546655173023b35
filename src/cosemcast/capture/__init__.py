"""Captures: pcap files and the DLMS conversations inside them."""
