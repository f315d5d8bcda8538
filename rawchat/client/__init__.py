"""The client: the edge where rawchat does I/O, in the order one call passes through it.

``client.py``       ``Client``: builds the request, walks the route of fallbacks,
                    accounts for the usage reported
``attempts.py``     ``Call``: the attempt loop against one endpoint (keys, pacing,
                    breaker, retries)
``transport.py``    the only module that imports ``requests``
``stream.py``       ``Stream``: a streamed answer read as its bytes arrive
``clock.py``        ``Clock``: sleep, monotonic and wall time, jitter, injected whole
``aio.py``          ``AsyncClient``: the same, awaitable
``trace.py``        what went over the wire, for people and tools

See https://platform.openai.com/docs/api-reference/chat.
"""
