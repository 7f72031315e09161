#if FUZZING
/// libFuzzer's driver, for fuzz executables whose `main` SwiftPM names itself (it links
/// `main` to `<module>_main`, so libFuzzer's own `main` is not used). Only linked with
/// `-sanitize=fuzzer`; never called otherwise.
@_silgen_name("LLVMFuzzerRunDriver")
func llvmFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<Int32>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32
) -> Int32

public enum FuzzDriver {
    public static func run(argc: Int32, argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?,
                           body: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32) -> Int32 {
        var count = argc
        var vector = argv
        return llvmFuzzerRunDriver(&count, &vector, body)
    }
}
#endif
