"""What every adapter needs alike: the storage codec, the DLQ filter, waiting to a deadline.

One implementation each, so the builtin, Redis and RabbitMQ adapters cannot drift apart
on how an envelope is stored or which DLQ entries a request selects.
"""
