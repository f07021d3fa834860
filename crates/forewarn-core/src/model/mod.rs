//! Learned failure probability: the features a model reads per service
//! ([`features`]), inference of the fitted classifier ([`classifier`], [`forest`]) and the
//! versioned model file that carries both ([`file`]). The `model` rule kind
//! ([`crate::rules::model`]) evaluates it; `forewarn train` fits it.

pub mod classifier;
pub mod features;
pub mod file;
pub mod forest;

pub use classifier::{sigmoid, Classifier, Logistic};
pub use file::{FeatureSchema, ModelFile};
pub use forest::Forest;
