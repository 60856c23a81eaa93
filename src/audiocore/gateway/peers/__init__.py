"""Local, protocol-faithful peers of the gateways, so everything runs offline: an ACS caller,
a realtime speech server, a Sora audio-streaming client."""
