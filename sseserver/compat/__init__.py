"""The OpenAI- and Anthropic-compatible endpoints, sans-IO.

Requests as each official SDK sends them (``POST /v1/chat/completions``,
``POST /v1/messages``) are checked here and carried to the providers as a
:class:`~sseserver.schema.NativeRequest`: a provider of the same wire format gets the
body unchanged (but for the model and streaming), a provider of the other format gets
it translated (:mod:`.to_anthropic`, :mod:`.to_openai`), and a field with no
equivalent there is refused with a 400 naming it. Answers come back through the
normalized events: streamed by the formatters of :mod:`sseserver.formats`, or
assembled into one JSON object by :mod:`.assemble`.
"""
