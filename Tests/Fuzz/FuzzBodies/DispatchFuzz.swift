#if canImport(Glibc)
import Glibc
#endif
import Logging
import VhostSystem
import VirtioBlk
@testable import VhostUserBackend

/// Fuzz body: the message decoder together with the connection's dispatch state machine. A
/// sequence of fuzzed messages, with descriptors of every kind attached (`DispatchFuzzFiles`),
/// goes over a real socketpair to a `VhostUserConnection` serving a virtio-blk device (null
/// image, two queues), which serves them one by one as the control plane would — starting ring
/// workers, mapping memory, exporting inflight areas — until it closes the connection or the
/// input ends (the front end then hangs up). Then the connection is closed.
///
/// Checked beyond "never traps": afterwards the process holds exactly the descriptors, memfd
/// mappings and threads it held before (every received descriptor closed, every mapping
/// unmapped, every worker joined), and every reply is a well-formed reply to a request that
/// was sent.
///
/// Input, per message: request code, flags choice (version 1; with NEED_REPLY; or four raw
/// bytes), descriptor count (0–7) then one kind byte per descriptor, payload length (two bytes,
/// up to 4 KiB + 16), size-field choice (the payload's length, or four raw bytes), payload.
public enum DispatchFuzz {
    static let maximumPayload = 4096 + 16

    /// Made once; reset before each input, as the control plane does for each connection.
    static let device: VirtioBlkDevice? = {
        let logger = Logger(label: "fuzz-dispatch", factory: { _ in DiscardingLogHandler() })
        guard let image = try? BlockImage(nullSize: 1 << 20, readOnly: false) else { return nil }
        return VirtioBlkDevice(image: image, numberOfQueues: 2, maximumQueueSize: 64, serial: "fuzz", logger: logger)
    }()

    /// A sanitizer runtime may start a helper thread of its own at the first pthread_create
    /// (ThreadSanitizer does): one thread made and joined up front, so that the census counts
    /// it before the first input as well as after.
    static let threadRuntimeStarted: Bool = {
        var thread = pthread_t()
        guard pthread_create(&thread, nil, { _ in nil }, nil) == 0 else { return false }
        pthread_join(thread, nil)
        return true
    }()

    public static func run(_ data: UnsafeRawBufferPointer) {
        guard let device, threadRuntimeStarted else { fatalError("cannot set up the fuzzed device") }
        let before = ProcessCensus.take()
        do {
            let files = try DispatchFuzzFiles()
            try serve(data, device: device, files: files)
        } catch {
            fatalError("fuzz set-up failed: \(error)")
        }
        let after = ProcessCensus.take()
        if after != before {
            fatalError("resources leaked: before \(before), after \(after)")
        }
    }

    private static func serve(_ data: UnsafeRawBufferPointer, device: VirtioBlkDevice,
                              files: DispatchFuzzFiles) throws(SystemError) {
        let (frontEnd, backEnd) = try UnixSocket.pair()
        try frontEnd.descriptor.setNonBlocking(true)
        try backEnd.setSendTimeout(milliseconds: 1_000)
        device.reset()
        let logger = Logger(label: "fuzz-dispatch", factory: { _ in DiscardingLogHandler() })
        let connection = VhostUserConnection(socket: backEnd, device: device, logger: logger)
        var input = FuzzInput(data)
        var sentRequests = Set<UInt32>()
        var replies = ReplyChecker()
        var messages = 0
        while !input.isAtEnd && messages < 64 {
            messages += 1
            let (bytes, descriptors, request) = nextMessage(&input, files: files)
            sentRequests.insert(request)
            do {
                try frontEnd.send(bytes, descriptors: descriptors)
            } catch {
                break  // The socket is full (the connection stopped reading): serve what was sent.
            }
        }
        // The front end hangs up after its last message: a message cut short ends there.
        _ = Glibc.shutdown(frontEnd.rawValue, Int32(SHUT_WR))
        var served = 0
        while served <= messages {
            served += 1
            let outcome = connection.serveOneMessage()
            replies.drain(frontEnd, sentRequests: sentRequests)
            if case .closed = outcome { break }
        }
        connection.close()
        replies.drain(frontEnd, sentRequests: sentRequests)
    }

    /// One message's bytes and attached descriptors, and its request code.
    private static func nextMessage(_ input: inout FuzzInput, files: DispatchFuzzFiles) -> ([UInt8], [Int32], UInt32) {
        let request = UInt32(input.byte())
        let flags: UInt32
        switch input.byte() % 4 {
        case 0, 1: flags = 0x1
        case 2: flags = 0x1 | 0x8
        default: flags = input.uint32()
        }
        let descriptorCount = Int(input.byte() % 8)
        var descriptors: [Int32] = []
        for _ in 0..<descriptorCount {
            descriptors.append(files.descriptor(kind: input.byte()))
        }
        let payloadLength = min(Int(input.byte()) | Int(input.byte()) << 8, maximumPayload)
        let sizeField = input.byte() % 8 == 7 ? input.uint32() : UInt32(payloadLength)
        var bytes: [UInt8] = []
        bytes.reserveCapacity(12 + payloadLength)
        for value in [request, flags, sizeField] {
            withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
        }
        bytes.append(contentsOf: input.bytes(upTo: payloadLength))
        return (bytes, descriptors, request)
    }
}
