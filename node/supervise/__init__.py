"""Supervision of local `ratchet` processes: starting them, watching them, stopping them in order.

Where things live:
- netnode.py  the contributor's link to the network: the `ratchet node` on its data directory
              (reused if one runs, else a child that dies with its parent)
- demo.py     the local network of separate processes behind `ratchet demo`
- errors.py   SuperviseError: a child that would not start, or a demo directory that is not one
"""
