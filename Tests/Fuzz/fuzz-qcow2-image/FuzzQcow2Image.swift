import FuzzBodies

/// libFuzzer's entry point (built with `-sanitize=fuzzer`, see Tests/Fuzz/run-fuzzers.sh).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzQcow2Image(_ data: UnsafePointer<UInt8>?, _ count: Int) -> Int32 {
    Qcow2ImageFuzz.run(UnsafeRawBufferPointer(start: data, count: data == nil ? 0 : count))
    return 0
}

#if FUZZING
/// SwiftPM links an executable's entry point as `<module>_main`; under libFuzzer that entry
/// point hands control to libFuzzer's driver.
@_cdecl("fuzz_qcow2_image_main")
public func fuzzQcow2ImageMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    FuzzDriver.run(argc: argc, argv: argv, body: fuzzQcow2Image)
}
#else
/// Without libFuzzer (which brings its own main): run the files named on the command line
/// (corpus entries, crash inputs), e.g. under a debugger.
@main
struct ReplayQcow2ImageInputs {
    static func main() { FuzzReplay.main(body: Qcow2ImageFuzz.run) }
}
#endif
