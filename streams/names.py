"""Topic names of the contract (before the deployment's prefix); importing this starts nothing."""

CLICKSTREAM = "clickstream"
CART = "cart"
CATALOG = "catalog"
FEEDBACK = "offer-feedback"
OFFERS = "offers"
DEAD_LETTER = "dead-letter"
#: Internal: every order, so that every worker learns "bought together" from all shoppers.
BASKETS = "nextoffer-baskets"

SHOPPER_INPUTS = (CLICKSTREAM, CART, FEEDBACK)
