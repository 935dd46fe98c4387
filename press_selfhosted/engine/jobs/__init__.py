"""Press's Agent jobs, one module per family of Press's job types, each ending with one class (the map below
is checked against the code by tests/unit/test_job_types.py):

- ``servers.ServerJobs``: Setup Container Server; Ping Job; Add User to Proxy; Remove User from Proxy;
  Update Database Schema Sizes; Cleanup Unused Files
- ``benches.BenchJobs``: Rebuild Bench Assets; New Bench; Update Bench Configuration; Bench Restart;
  Archive Bench
- ``sites.SiteJobs``: New Site; Install App on Site; Uninstall App from Site; Migrate Site; Create User;
  Run After Migrate Steps; Clear Cache; Reinstall Site; Update Site Configuration; Activate Site;
  Deactivate Site; Add Domain; Remove Domain; Archive Site
- ``site_updates.SiteUpdateJobs``: Update Site Pull; Update Site Migrate; Recover Failed Site Pull; Move
  Site to Bench; Recover Failed Site Migrate; Recover Failed Site Update
- ``site_rename.SiteRenameJobs``: Rename Site
- ``site_tables.SiteTableJobs``: Restore Site Tables; Optimize Tables
- ``backups.BackupJobs``: Backup Site
- ``restore.RestoreJobs``: Restore Site; New Site from Backup
- ``proxy.ProxyJobs``: Add Site to Upstream; Remove Site from Upstream; Update Site Status; Add Domain to
  Upstream; Add Host to Proxy; Add Wildcard Hosts to Proxy; Rename Site on Upstream; Remove Host from
  Proxy
- ``builds.BuilderJobs``: Run Remote Builder

A family's class is built with its settings; its ``handlers()`` comes first and lists the family's job
types, each as Press's method, Agent path and steps (Press's step names, in order, with the function
doing each). A step is a function of the job's ``StepContext``: a method of the class when it needs the
family's settings, a module function otherwise; ``site_steps`` holds those several site families share.
``handlers`` is the contract between these classes and the executor (``engine.agent``).
"""
