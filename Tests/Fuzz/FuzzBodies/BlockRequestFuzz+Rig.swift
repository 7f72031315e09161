import StorageIO
#if canImport(Glibc)
import Glibc
#endif
import Logging
import VhostSystem
import VhostUserBackend
import VirtioBlk
import VirtioCore

extension BlockRequestFuzz {
    /// What the body makes once per process and resets for every input: guest memory with a
    /// 16-entry ring at the bottom of region 0, a 64 KiB disk image in a memfd (opened by path
    /// twice, read-write and read-only, as `BlockImage` opens files), a device and a request
    /// handler on each, and the shadow disk.
    final class Rig {
        static let queueSize = 16
        /// The device's largest queue: the longest chain (through an indirect table) it accepts.
        static let deviceQueueSize = 64
        static let imageByteCount = 64 * 1024
        static let serial = "fuzz-blk-serial"

        /// Guest-physical addresses of the ring (region 0); buffers go from `dataStart` on.
        static let descriptorTable: UInt64 = 0x0
        static let availableRing: UInt64 = 0x100
        static let usedRing: UInt64 = 0x200
        static let indirectTable: UInt64 = 0x400
        static let dataStart: UInt64 = 0x1000

        let guest = FuzzGuestMemory()
        let layout: SplitQueue.Layout
        let writableDevice: VirtioBlkDevice
        let readOnlyDevice: VirtioBlkDevice
        let writableHandler: any VirtqueueRequestHandler
        let readOnlyHandler: any VirtqueueRequestHandler
        /// The image as the device stores it (a mapping of the memfd).
        let image: UnsafeMutableRawBufferPointer
        /// The disk as the requests so far should have left it.
        let shadow: UnsafeMutableRawBufferPointer
        /// What GET_ID must answer: the serial, NUL-padded to 20 bytes.
        let identifier: [UInt8]
        private let initialImage: UnsafeMutableRawBufferPointer
        private let imageMapping: MemoryMapping

        var sectorCount: UInt64 { UInt64(Self.imageByteCount / 512) }

        init() {
            do {
                let file = try MemFD.create(name: "fuzz-blk-image", size: UInt64(Self.imageByteCount))
                imageMapping = try MemoryMapping(descriptor: file, offset: 0, length: UInt64(Self.imageByteCount))
                // /proc/self/fd opens the memfd anew, with the access mode asked for.
                let path = "/proc/self/fd/\(file.rawValue)"
                let logger = Logger(label: "fuzz-block-request") { _ in SwiftLogNoOpLogHandler() }
                writableDevice = VirtioBlkDevice(image: try BlockImage(path: path, readOnly: false), numberOfQueues: 1,
                                                 maximumQueueSize: Self.deviceQueueSize, serial: Self.serial, ioEngine: .sync, logger: logger)
                readOnlyDevice = VirtioBlkDevice(image: try BlockImage(path: path, readOnly: true), numberOfQueues: 1,
                                                 maximumQueueSize: Self.deviceQueueSize, serial: Self.serial, ioEngine: .sync, logger: logger)
                layout = try SplitQueue.Layout.translate(
                    queueSize: Self.queueSize, descriptorTable: GuestPhysicalAddress(Self.descriptorTable),
                    availableRing: GuestPhysicalAddress(Self.availableRing), usedRing: GuestPhysicalAddress(Self.usedRing),
                    memory: guest.memory)
            } catch {
                fatalError("cannot set up the fuzzed block device: \(error)")
            }
            writableHandler = writableDevice.makeRequestHandler(queueIndex: 0, queueSize: Self.queueSize, negotiatedFeatures: writableDevice.features)
            readOnlyHandler = readOnlyDevice.makeRequestHandler(queueIndex: 0, queueSize: Self.queueSize, negotiatedFeatures: readOnlyDevice.features)
            image = imageMapping.bytes
            shadow = .allocate(byteCount: Self.imageByteCount, alignment: 16)
            initialImage = .allocate(byteCount: Self.imageByteCount, alignment: 16)
            // Never zero, and different in every sector, so zeroing and misplaced data show.
            for offset in 0..<Self.imageByteCount {
                initialImage[offset] = UInt8(truncatingIfNeeded: (offset >> 9) &* 37 &+ offset &* 13) | 1
            }
            identifier = Array(Self.serial.utf8) + [UInt8](repeating: 0, count: 20 - Self.serial.utf8.count)
        }

        deinit {
            shadow.deallocate()
            initialImage.deallocate()
        }

        /// The image and the shadow back to the initial pattern, guest memory to zeroes.
        func reset() {
            image.copyMemory(from: UnsafeRawBufferPointer(initialImage))
            shadow.copyMemory(from: UnsafeRawBufferPointer(initialImage))
            guest.fill(repeating: UnsafeRawBufferPointer(start: nil, count: 0))
        }
    }
}
