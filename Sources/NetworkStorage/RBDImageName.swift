/// `--blk-rbd`'s POOL/IMAGE[@SNAPSHOT], each part non-empty. Namespaces are not taken.
public struct RBDImageName: Sendable, Equatable, CustomStringConvertible {
    public let pool: String
    public let image: String
    public let snapshot: String?

    public init(parsing text: String) throws(NetworkStorageError) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[0].isEmpty else { throw .rbdInvalidName(text) }
        let imageAndSnapshot = parts[1].split(separator: "@", omittingEmptySubsequences: false)
        guard (1...2).contains(imageAndSnapshot.count), imageAndSnapshot.allSatisfy({ !$0.isEmpty }) else {
            throw .rbdInvalidName(text)
        }
        pool = String(parts[0])
        image = String(imageAndSnapshot[0])
        snapshot = imageAndSnapshot.count == 2 ? String(imageAndSnapshot[1]) : nil
    }

    public var description: String { "\(pool)/\(image)" + (snapshot.map { "@\($0)" } ?? "") }
}
