// Placeholder until the model's first type lands.
