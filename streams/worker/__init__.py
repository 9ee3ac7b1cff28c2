"""The worker's runtime: the Faust app, its topics, table and agents, the batch pipeline, the
offset guard, metrics and the supervisor. The only package that imports Faust."""
