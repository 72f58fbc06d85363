// Runs before the partition is wiped.
export default async function destroy(slap) {
  slap.log.info({ destroying: slap.destroying }, "test-web destroy hook");
}
