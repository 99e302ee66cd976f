"""The public leaderboard: a read-only aiohttp app over a node's store.

Where things live:
- state.py     Settings, the shared Leaderboard state and its app key (imports none of the below)
- app.py       create_app(home, settings): middlewares, routes, stores opened and closed
- views.py     routes; every page has a JSON twin under /api/
- present.py   snapshot -> plain dicts (the one shape behind pages and API); present_teams.py for teams
- people.py    profiles, teams and points histories, computed with the snapshot
- journal.py   the local contributor journal, read-only (its own SQLite connection per request)
- snapshot.py  consensus + credit + indexes, built once per store version
- cache.py     snapshots and rendered responses keyed on Store.data_version()
- live.py      version watcher and server-sent events
- chart.py, diff.py   inline-SVG chart geometry; highlighted script diffs
- security.py  CSP and other headers, request limits, per-client rate limit
"""
