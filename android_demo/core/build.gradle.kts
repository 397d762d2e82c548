// The app's pre/post-processing in plain Java, with no Android dependency, so it is unit-tested on
// any JVM: `./gradlew :core:test` here, or `core/run_tests.sh` with javac alone (what CI runs).
plugins {
    `java-library`
}

tasks.named<JavaCompile>("compileJava") {
    // The Java 8 API is what Android minSdk 24 provides; --release 8 makes javac refuse the rest.
    options.release.set(8)
}

tasks.named<JavaCompile>("compileTestJava") {
    options.release.set(17)  // tests run on the build JDK (17+, which AGP 9 requires anyway)
}

dependencies {
    testImplementation(libs.junit)
}

tasks.test {
    // Golden-vector and fixture directories, as run_tests.sh passes them:
    // ./gradlew :core:test -Pedgetl.golden=/path/to/RUN_DIR/export/golden
    listOf("edgetl.golden", "edgetl.fixtures").forEach { key ->
        project.findProperty(key)?.let { systemProperty(key, file(it.toString()).absolutePath) }
    }
}
