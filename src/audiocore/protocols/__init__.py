"""Sans-I/O protocol handlers, one module per service (import the one you need).

- :mod:`~audiocore.protocols.acs`: Azure Communication Services media streaming (server side)
- :mod:`~audiocore.protocols.realtime`: Azure Voice Live / OpenAI Realtime (client side)
- :mod:`~audiocore.protocols.voiceapi`: the STT-bot-TTS Voice API, v1 and v2
- :mod:`~audiocore.protocols.sora`: Sora audio streaming (gateway side)
- :mod:`~audiocore.protocols.twilio`, :mod:`~audiocore.protocols.telnyx`,
  :mod:`~audiocore.protocols.plivo`, :mod:`~audiocore.protocols.exotel`,
  :mod:`~audiocore.protocols.vonage`: telephony media streams (server side)

Feed a session what arrived, get typed events; call a builder, get what to send. No sockets,
no asyncio, no threads here: that is ``audiocore.gateway``'s job. See ``docs/protocols.md``.
"""
