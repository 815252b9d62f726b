//! Integration tests, in one binary so they share one build and the helpers in `support`.

mod support;
