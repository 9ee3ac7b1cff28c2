"""nextoffer's shell: settings, codecs, the Faust app, its topics, tables and agents, the Redis writer."""
