"""The agent's loop (docs/protocol.md): the portal client, the controller that
heartbeats, claims and runs one command at a time, and the side channel that
answers short tasks beside it.

    portal.py       the protocol over requests, and its error tree
    controller.py   one turn of the loop at a time: step(); run() until shutdown
    sidechannel.py  the task long-poll and the worker thread that answers tasks
"""
