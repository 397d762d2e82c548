// Plugins are declared here once and applied in the modules that need them.
plugins {
    alias(libs.plugins.android.application) apply false
}
