"""Google Cloud backends: Store on Firestore, BlobStore on Cloud Storage, ComputeProvider on
Compute Engine. Needs the `gcp` extra: pip install 'burla-cluster[gcp]'."""
