//! Wire types of the APIs nobg serves.
