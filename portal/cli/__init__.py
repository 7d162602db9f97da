"""`dtn`: the person-side command-line client of the portal's REST API (/api/v1/).

It imports nothing from Django: it talks to a portal over HTTP with a personal token."""
