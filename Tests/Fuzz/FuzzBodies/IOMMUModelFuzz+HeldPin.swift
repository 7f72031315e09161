import IOMMUModel

extension IOMMUModelFuzz {
    /// A pin token the body holds (tokens are non-copyable, so they cannot sit in an array
    /// themselves); the token is taken out to be released.
    final class HeldPin {
        var token: PinToken?
        let range: ClosedRange<UInt64>

        init(_ token: consuming PinToken) {
            range = token.range
            self.token = Optional(token)
        }
    }
}
