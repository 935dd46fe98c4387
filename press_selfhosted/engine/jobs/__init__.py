"""Press's Agent jobs, one module per family of Press's job types, each ending with one class:

- ``servers.ServerJobs``: Setup Container Server, Ping Job, Add/Remove User from Proxy, Update Database
  Schema Sizes, Cleanup Unused Files
- ``benches.BenchJobs``: New Bench, Update Bench Configuration, Bench Restart, Rebuild Bench Assets,
  Archive Bench
- ``sites.SiteJobs``: New Site, Install/Uninstall App, Migrate Site, Create User, Run After Migrate Steps,
  Clear Cache, Reinstall Site, Update Site Configuration, Activate/Deactivate Site, Add/Remove Domain,
  Archive Site
- ``site_updates.SiteUpdateJobs``: Update Site Pull/Migrate, Recover Failed Site Pull/Migrate/Update, Move
  Site to Bench
- ``site_rename.SiteRenameJobs``: Rename Site
- ``site_tables.SiteTableJobs``: Restore Site Tables, Optimize Tables
- ``backups.BackupJobs``: Backup Site
- ``restore.RestoreJobs``: Restore Site, New Site from Backup
- ``proxy.ProxyJobs``: Add/Remove Site (to/from) Upstream, Update Site Status, Add Domain to Upstream, Add
  Host / Add Wildcard Hosts to Proxy, Remove Host from Proxy, Rename Site on Upstream
- ``builds.BuilderJobs``: Run Remote Builder

A family's class is built with its settings; its ``handlers()`` comes first and lists the family's job
types, each as Press's method, Agent path and steps (Press's step names, in order, with the function
doing each). A step is a function of the job's ``StepContext``: a method of the class when it needs the
family's settings, a module function otherwise; ``site_steps`` holds those several site families share.
``handlers`` is the contract between these classes and the executor (``engine.agent``).
"""
