"""Online serving: settings, A/B routing of users to arms, and the provenance log of every answer."""
