export default async function deploy() {}
