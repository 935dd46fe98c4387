"""Press's Agent jobs, one module per family of Press's job types (``sites`` for New Site, ``proxy`` for
Add Site to Upstream, ``benches`` for New Bench, ...): each job type is a handler, a list of steps named
as Press names them (``handlers`` holds that contract). Built on the clients; the agent runs them."""
