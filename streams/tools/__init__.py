"""Tools around the engine: the demo, the simulated storefront, data-set readers, the offline and
live evaluations, the feedback loop and their plots."""
