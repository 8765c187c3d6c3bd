//! BiRefNet (and Bria RMBG-2.0, which is a BiRefNet checkpoint) in Candle.
