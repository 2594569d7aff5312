"""Client-side encryption at rest of backup files (per backup class).

Why per class, at the ArtifactWriter: every engine (MongoDB, Redis, files, git, oplog
slices) writes through the writer, so one place encrypts them all; the bytes staged in the
local store are already ciphertext, and replication copies them unchanged, so every store
holds the same ciphertext and the one manifest (ciphertext sha256 for stores, plaintext
sha256 for restores) is valid everywhere, S3 Object Lock included. Per-store encryption
would need one manifest per store and re-encryption on every copy.

Public API (no Airflow):

* :class:`BackupEncryption` / :func:`encryption_for_class` - pass to ``ArtifactWriter(encryption=...)``.
* :func:`load_keyring` / :class:`Keyring` / :func:`set_connection_resolver` - master keys.
* :func:`decrypt_to_file` / :func:`decrypt_stream` - verified decryption (the reader uses them).
* :func:`keys_needed` - which master keys the stored backups still need (rotation).
* The file format is documented in :mod:`backup_dr.core.crypto.stream`.
"""

from backup_dr.core.crypto.files import Decrypted, context_of, decrypt_stream, decrypt_to_file
from backup_dr.core.crypto.keys import (BackupEncryption, EncryptionKeyError, Keyring, MasterKey, encryption_for_class,
                                        fingerprint, generate_key, load_keyring, set_connection_resolver)
from backup_dr.core.crypto.stream import SCHEME, Decryptor, EncryptingWriter, Header

__all__ = [
    "SCHEME", "BackupEncryption", "Decrypted", "Decryptor", "EncryptingWriter", "EncryptionKeyError", "Header", "Keyring",
    "MasterKey", "context_of", "decrypt_stream", "decrypt_to_file", "encryption_for_class", "fingerprint", "generate_key",
    "keys_needed", "load_keyring", "set_connection_resolver",
]


def __getattr__(name):  # keys_needed pulls in the catalog; load it only when asked
    if name == "keys_needed":
        from backup_dr.core.crypto.rotation import keys_needed

        return keys_needed
    raise AttributeError(name)
