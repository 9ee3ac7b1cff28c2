"""What every part of the shell talks through: settings, security, topic names, codecs, the Redis
offer store, Kafka admin, producers and readers, the shared learners' feed. No Faust here."""
