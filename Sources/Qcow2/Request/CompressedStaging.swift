/// Scratch for one compressed cluster read through the engine (`Qcow2Request`): its bytes as
/// read from the file, then the cluster decompressed. Lent by the disk's pool
/// (`Qcow2Disk.borrowStaging`) for one request.
final class CompressedStaging {
    let input: AlignedBuffer
    let output: AlignedBuffer

    init(inputBytes: Int, outputBytes: Int) {
        input = AlignedBuffer(byteCount: inputBytes)
        output = AlignedBuffer(byteCount: outputBytes)
    }
}
