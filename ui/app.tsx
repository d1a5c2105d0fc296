export function App() {
  return <main>ART for Figma</main>;
}
