import Testing

/// Every test that starts a back end. `ControlPlane` runs on GLib's default main context, which
/// two control planes in one process would share, so these run one at a time (the trait
/// applies to the nested suites in the other files).
@Suite("Back end served to a real front end", .serialized)
enum BackEndIntegration {}

/// Tests of the daemon binary (`ChildDaemon`): each back end in its own process, so they need
/// not wait for one another nor for the in-process ones above, and run beside them.
@Suite("The daemon binary served to a real front end")
enum DaemonBinaryTests {}
