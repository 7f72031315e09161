#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import VirtioBlk

@Suite("BlockImage")
struct BlockImageTests {
    static func temporaryFile(size: Int) -> String {
        var template = Array("/tmp/vublk-image-XXXXXX".utf8CString)
        let fd = mkstemp(&template)
        if size > 0 { _ = ftruncate(fd, off_t(size)) }
        close(fd)
        return String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    @Test func refusesSizeThatIsNotAMultipleOfTheSector() {
        let path = Self.temporaryFile(size: 4097)
        defer { unlink(path) }
        #expect(throws: BlockImageError.sizeNotMultipleOfSectorSize(path: path, size: 4097)) {
            _ = try BlockImage(path: path, readOnly: false)
        }
    }

    @Test func refusesEmptyFile() {
        let path = Self.temporaryFile(size: 0)
        defer { unlink(path) }
        #expect(throws: BlockImageError.empty(path: path)) { _ = try BlockImage(path: path, readOnly: false) }
    }

    @Test func refusesDirectoryAndMissingFile() {
        #expect(throws: BlockImageError.notAFileOrBlockDevice(path: "/tmp")) { _ = try BlockImage(path: "/tmp", readOnly: true) }
        #expect(throws: BlockImageError.self) { _ = try BlockImage(path: "/nonexistent/disk.img", readOnly: true) }
    }

    @Test func errorMessagesNameTheProblem() {
        let error = BlockImageError.sizeNotMultipleOfSectorSize(path: "d.img", size: 1000)
        #expect(error.description.contains("not a multiple of the 512-byte sector"))
    }

    @Test func reportsSizeAndSectors() throws {
        let path = Self.temporaryFile(size: 1 << 20)
        defer { unlink(path) }
        let image = try BlockImage(path: path, readOnly: true)
        #expect(image.size == 1 << 20)
        #expect(image.sectorCount == 2048)
        #expect(!image.isBlockDevice)
    }

    @Test func writeZeroesAndDiscardReadBackAsZeroes() throws {
        let path = Self.temporaryFile(size: 1 << 20)
        defer { unlink(path) }
        let image = try BlockImage(path: path, readOnly: false)
        let fd = image.descriptor.rawValue
        var ones = [UInt8](repeating: 0xFF, count: 1 << 20)
        #expect(pwrite(fd, &ones, ones.count, 0) == ones.count)
        let zeroes = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 4096)
        defer { zeroes.deallocate() }
        zeroes.initializeMemory(as: UInt8.self, repeating: 0)
        #expect(image.writeZeroes(offset: 4096, length: 8192, unmap: false, zeroes: UnsafeRawBufferPointer(zeroes)) == 0)
        #expect(image.writeZeroes(offset: 65536, length: 4096, unmap: true, zeroes: UnsafeRawBufferPointer(zeroes)) == 0)
        #expect(image.discard(offset: 131072, length: 4096) == 0)
        var back = [UInt8](repeating: 0, count: 1 << 20)
        #expect(pread(fd, &back, back.count, 0) == back.count)
        #expect(back[0..<4096].allSatisfy { $0 == 0xFF })
        #expect(back[4096..<12288].allSatisfy { $0 == 0 })
        #expect(back[12288..<65536].allSatisfy { $0 == 0xFF })
        #expect(back[65536..<69632].allSatisfy { $0 == 0 })
        #expect(back[131072..<135168].allSatisfy { $0 == 0 })
        #expect(back[135168...].allSatisfy { $0 == 0xFF })
        #expect(image.flush() == 0)
    }
}

@Suite("BlockDeviceConfiguration")
struct BlockDeviceConfigurationTests {
    @Test func encodesFieldsAtTheSpecOffsets() {
        var configuration = BlockDeviceConfiguration(capacitySectors: 0x0102_0304_0506_0708, maximumQueueSize: 32768,
                                                     numberOfQueues: 4)
        configuration.writeback = 0
        let bytes = configuration.encoded()
        #expect(bytes.count == 60)
        #expect(Array(bytes[0..<8]) == [0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01])
        #expect(Array(bytes[8..<12]) == [0x00, 0x00, 0x10, 0x00])   // size_max 1 MiB
        #expect(Array(bytes[12..<16]) == [126, 0, 0, 0])            // seg_max: fits a 128-entry ring
        #expect(Array(bytes[20..<24]) == [0x00, 0x02, 0, 0])        // blk_size 512
        #expect(bytes[32] == 0)                                     // writeback
        #expect(Array(bytes[34..<36]) == [4, 0])                    // num_queues
        #expect(Array(bytes[40..<44]) == [32, 0, 0, 0])             // max_discard_seg
        #expect(Array(bytes[44..<48]) == [8, 0, 0, 0])              // discard_sector_alignment
        #expect(Array(bytes[52..<56]) == [32, 0, 0, 0])             // max_write_zeroes_seg
        #expect(bytes[56] == 1)                                     // write_zeroes_may_unmap
    }
}
