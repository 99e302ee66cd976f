"""The node's peer-to-peer layer (py-libp2p on trio, hosted in asyncio).

Where things live:
- bridge.TrioGuest: trio in guest mode inside the asyncio loop (the only meeting point).
- host: network identity in the data directory, a Noise-only/yamux/TCP libp2p host.
- wire: frames and the msgpack messages peers exchange, validated field by field.
- reqresp: objects, blobs, inventories and arena lists by request/response.
- gossip: gossipsub with fixed parameters; per-arena topics; validation before store/forward.
- claims, claimgossip: signed "trying X" hints that expire; published from and kept in the journal.
- sync: anti-entropy (inventory diff, pull in dependency order).
- peers: scores, rate limits, disconnection of peers that misbehave.
- discovery: bootstrap addresses (flag, config file, arena) and mDNS.
- network.Network: all of the above around one store; what the roles use.
"""
