package dev.edgetl.core;

/**
 * A model's metadata, labels, golden file or associated-file zip is missing or malformed.
 *
 * <p>The JVM counterpart of Python's {@code EdgetlError} for what a user can fix by re-exporting
 * the model; the message follows the same shape (the rule, then what was received).
 */
public class MetadataException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    public MetadataException(String message) {
        super(message);
    }

    public MetadataException(String message, Throwable cause) {
        super(message, cause);
    }
}
