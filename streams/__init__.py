"""nextoffer's shell, by role: ``worker`` (the Faust runtime), ``io`` (settings, codecs, Kafka and
Redis adapters), ``ops`` (the command, HTTP, status, explain) and ``tools`` (demo, simulator,
evaluations)."""
