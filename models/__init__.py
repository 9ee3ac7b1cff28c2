"""nextoffer's pure core: offers, rules, catalog, shopper state and learners.

Nothing here talks to Kafka, Redis or Faust, reads the clock or draws unseeded
randomness: the shell in ``streams/`` passes time and seeds in.
"""
