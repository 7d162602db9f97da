"""The vocabulary the portal, the agent and the `dtn` CLI share, written once.

Standard library only, so the CLI installs light and nothing here can pull the
portal's or the agent's world in with it (tests/test_import_contract.py checks
both). A word that crosses the wire between two of the parts belongs here; a word
only one part uses stays with that part.

- `states`: command kinds, command states and their allowed changes, transfer
  states, file outcomes, report phases, the receiver's verification verdicts
- `failures`: the closed list of reasons a command fails
- `options`: what a send may ask for (overwrite policy, network check mode,
  tuning within bounds, a bandwidth limit)
- `netcheck`: the network check's verdict words
- `endpoints`: the rule a receiver's address must pass, in the portal and in the sender
- `tasks`: the side channel's task kinds
- `api`: the agent API's prefix, the tokens' prefixes, a certificate's fingerprint
- `units`: the one way bytes and speeds are written for people (IEC units)
- `progress`: how far a transfer is, as pages and the CLI show it
- `env`: the one strict reader of settings from the environment
"""
