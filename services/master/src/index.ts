export { demoStory } from "./demo.js";
