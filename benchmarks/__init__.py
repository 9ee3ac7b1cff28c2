"""``nextoffer bench``: the live pipeline measured against the ceiling of the stack it stands on."""
