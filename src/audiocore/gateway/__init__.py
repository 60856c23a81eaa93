"""The only layer of audiocore that does I/O: asyncio servers and clients on real network
libraries, the reference gateways (Sora audio streaming over HTTP/2; the ACS <-> realtime voice
bridge) and, in :mod:`audiocore.gateway.peers`, protocol-faithful local peers for the demo, the
tests and the load test.

Each gateway is built on the sans-I/O handlers of :mod:`audiocore.protocols` and the kernels of
:mod:`audiocore`; nothing below this package opens a socket.
"""
