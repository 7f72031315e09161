import VhostUserBackend
import VirtioBlk
import VirtioCore

/// Fuzz body: virtio-blk requests through the device's request handler, on a valid ring the body
/// builds (see `Rig` and `PlacedChain`) over real guest memory and a 64 KiB memfd image.
///
/// Input: one byte of device options (bit 0 read-only, bit 1 writethrough), then up to 12
/// requests (`Request`): type, reserved field and sector, header cut short or not, OUT data or
/// DISCARD / WRITE_ZEROES segments, data and status buffers of fuzzed count, length and direction
/// (the status byte may be missing or device-readable), direct or indirect.
///
/// Properties checked, beyond "never traps", after every request against `Expectation`, a model
/// of the device's promises, and a shadow copy of the disk:
/// - the status byte (the last writable byte) is OK, IOERR or UNSUPP, and the one expected; none
///   is written when the chain has no writable byte; the used length is the one expected, and
///   never more than the writable bytes;
/// - guest memory changes only where the device must write: the status byte, the data of an OK
///   IN (exactly the shadow's bytes), the serial of an OK GET_ID; readable buffers, failed IN
///   buffers and everything else stay as they were;
/// - the image changes only as an OK OUT, WRITE_ZEROES or DISCARD says (the shadow follows);
///   any other request, and anything on the read-only device, leaves it byte-identical;
/// - the used element carries the chain's head and the returned length.
public enum BlockRequestFuzz {
    static let maximumRequests = 12

    /// Made on first use and reset for every input.
    ///
    /// SAFETY (nonisolated(unsafe)): libFuzzer calls the body on one thread, and the corpus replay
    /// runs one body's inputs one after another; no other body uses this instance.
    nonisolated(unsafe) static let rig = Rig()

    public static func run(_ data: UnsafeRawBufferPointer) {
        var input = FuzzInput(data)
        let options = input.byte()
        let readOnly = options & 1 != 0
        let device = readOnly ? rig.readOnlyDevice : rig.writableDevice
        let handler = readOnly ? rig.readOnlyHandler : rig.writableHandler
        let writeback: UInt8 = options & 2 != 0 ? 0 : 1
        guard device.writeConfiguration(offset: BlockDeviceConfiguration.writebackOffset, bytes: [writeback]) else {
            fatalError("the device refused cache mode \(writeback)")
        }
        rig.reset()
        var queue = SplitQueue(layout: rig.layout, features: [.indirectDescriptors], maximumChainLength: Rig.deviceQueueSize)

        for number in 0..<maximumRequests {
            guard let request = Request(&input, sectorCount: rig.sectorCount),
                  let placed = PlacedChain(placing: request, in: rig.guest) else { return }
            let head = UInt16(number * 5 % Rig.queueSize)
            placed.offer(head: head, availableIndex: UInt16(number), indirect: request.indirect, in: rig.guest)
            rig.guest.takeSnapshot()

            let chain: DescriptorChain
            do throws(VirtqueueError) {
                guard let popped = try queue.popAvailable(memory: rig.guest.memory) else {
                    fatalError("request \(number) was offered but nothing was popped")
                }
                chain = popped
            } catch {
                fatalError("the ring the body built was refused: \(error)")
            }
            guard chain.headIndex == head, chain.readableByteCount == request.readable.count,
                  chain.writableByteCount == request.writableCount else {
                fatalError("popped head \(chain.headIndex) with \(chain.readableByteCount)/\(chain.writableByteCount) bytes, offered head \(head) with \(request.readable.count)/\(request.writableCount)")
            }
            guard case .completed(let usedLength) = handler.submit(chain, token: RequestToken(head: chain.headIndex)) else {
                fatalError("the synchronous engine left request \(number) in flight")
            }
            let expected = Expectation(request, readOnly: readOnly, sectorCount: rig.sectorCount)
            check(usedLength: usedLength, of: request, placed: placed, against: expected)
            checkImage(after: request, against: expected, readOnly: readOnly)

            queue.pushUsed(head: chain.headIndex, writtenLength: usedLength)
            queue.publishUsed()
            let element = Rig.usedRing + 4 + 8 * UInt64(number % Rig.queueSize)
            guard rig.guest.load(UInt32.self, at: element) == UInt32(head), rig.guest.load(UInt32.self, at: element + 4) == usedLength,
                  rig.guest.load(UInt16.self, at: Rig.usedRing + 2) == UInt16(number + 1) else {
                fatalError("used element \(number) is not (\(head), \(usedLength))")
            }
        }
    }
}
