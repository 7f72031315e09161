#if canImport(Glibc)
import Glibc
#endif
import Foundation
import IOMMUModel
import Synchronization
import VhostSystem
import VhostUserFrontEnd
import VhostUserProtocol
import VirtioCore

/// Plays QEMU's side of the back-end channel during a run in `IOMMUMode.onDemand`: for each
/// MISS it links the page in the IOMMU model's mapper, sends the UPDATE on the main socket
/// (acknowledged) and then acknowledges the MISS. It is the only user of the session while the
/// run lasts; `stop()` returns it to the caller.
final class MissResponder: @unchecked Sendable {  // its mutable state belongs to its thread until `stop`
    private let session: FrontEndSession
    private let channel: UnixSocket
    private let ram: GuestRAM
    private var mapper: TwoStepMapper
    private let iovaBase: UInt64
    private let stopRequested = Atomic<Bool>(false)
    private let done = DispatchSemaphore(value: 0)
    private(set) var missesAnswered = 0
    private(set) var failure: BenchError?

    init(session: FrontEndSession, channel: UnixSocket, ram: GuestRAM, mapper: TwoStepMapper, iovaBase: UInt64) {
        self.session = session
        self.channel = channel
        self.ram = ram
        self.mapper = mapper
        self.iovaBase = iovaBase
    }

    func start() {
        let thread = Thread { [self] in
            serve()
            done.signal()
        }
        thread.name = "bench-miss"
        thread.start()
    }

    /// Stops the thread and waits for it.
    func stop() {
        stopRequested.store(true, ordering: .relaxed)
        done.wait()
    }

    private func serve() {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: MessageHeader.byteCount + IOTLBMessage.byteCount,
                                                            alignment: 8)
        defer { buffer.deallocate() }
        while !stopRequested.load(ordering: .relaxed) {
            var descriptor = pollfd(fd: channel.rawValue, events: Int16(POLLIN), revents: 0)
            guard poll(&descriptor, 1, 50) > 0 else { continue }
            do {
                try answerOne(buffer)
            } catch {
                failure = error
                return
            }
        }
    }

    /// Reads one message from the channel; a back end that sends anything but a well-formed
    /// IOTLB MISS is reported.
    private func receive(_ buffer: UnsafeMutableRawBufferPointer) throws(BenchError) -> (BackendMessage, needsAck: Bool) {
        let headerBytes = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<MessageHeader.byteCount])
        let payload = UnsafeMutableRawBufferPointer(rebasing: buffer[MessageHeader.byteCount...])
        do throws(SystemError) {
            _ = try channel.receiveExactly(into: headerBytes, deadline: MonotonicDeadline(millisecondsFromNow: 1_000))
        } catch {
            throw .system(error)
        }
        let header: MessageHeader
        do throws(ProtocolError) {
            header = try MessageHeader(parsing: UnsafeRawBufferPointer(headerBytes))
        } catch {
            throw .backEndMisbehaved(queue: 0, "back-end channel: \(error)")
        }
        guard Int(header.size) == IOTLBMessage.byteCount else {
            throw .backEndMisbehaved(queue: 0, "back-end channel: request \(header.request) of \(header.size) bytes")
        }
        do throws(SystemError) {
            _ = try channel.receiveExactly(into: payload, deadline: MonotonicDeadline(millisecondsFromNow: 1_000))
        } catch {
            throw .system(error)
        }
        do throws(ProtocolError) {
            let message = try BackendMessageDecoder.decode(header: header, payload: UnsafeRawBufferPointer(payload),
                                                           fileDescriptorCount: 0)
            return (message, header.flags.contains(.needReply))
        } catch {
            throw .backEndMisbehaved(queue: 0, "back-end channel: \(error)")
        }
    }

    private func answerOne(_ buffer: UnsafeMutableRawBufferPointer) throws(BenchError) {
        let (message, needsAck) = try receive(buffer)
        guard case .iotlbMsg(let miss) = message, miss.type == .miss else {
            throw .backEndMisbehaved(queue: 0, "back-end channel: unexpected \(message)")
        }
        let page = miss.iova & ~4095
        guard page >= iovaBase, let user = ram.frontEndVirtualAddress(of: GuestPhysicalAddress(page - iovaBase)) else {
            throw .backEndMisbehaved(queue: 0, "MISS for IOVA 0x\(String(miss.iova, radix: 16)), which the driver never used")
        }
        if mapper.links.lookup(page) == nil {
            let messages: [IOTLBMessageToSend]
            do throws(TwoStepMappingError) {
                messages = try mapper.link(iova: page, size: 4096, userAddress: user.rawValue, permission: .readWrite)
            } catch {
                throw .backEndMisbehaved(queue: 0, "MISS for IOVA 0x\(String(miss.iova, radix: 16)): \(error)")
            }
            try IOTLBSender.send(messages, on: session)
        }
        missesAnswered += 1
        if needsAck {
            do throws(SystemError) {
                try channel.send(BackendAck(request: .iotlbMsg, value: 0).encoded())
            } catch {
                throw .system(error)
            }
        }
    }
}
